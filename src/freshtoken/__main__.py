from freshtoken.cli._main import main

main()
