"""The variables of providers' own tools that freshtoken reads, below `FRESHTOKEN_*` ones:
preset -> variable -> setting. Their presets are in provider/_presets.py; this part imports
nothing, so that the command line's endpoint rule (_local_endpoint.py) can read it."""

VARIABLES = {
    # The Genesys Cloud `gc` CLI and Terraform provider.
    "genesys": {
        "GENESYSCLOUD_REGION": "region",
        "GENESYSCLOUD_OAUTHCLIENT_ID": "client_id",
        "GENESYSCLOUD_OAUTHCLIENT_SECRET": "client_secret",
    },
}
#: Every preset's variables that carry the client secret.
SECRET_VARIABLES = tuple(
    name for table in VARIABLES.values() for name, key in table.items() if key == "client_secret"
)
