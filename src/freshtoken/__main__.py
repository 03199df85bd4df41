from freshtoken._interfaces.cli import main

main()
