from freshtoken._interfaces._fast import main

main()
