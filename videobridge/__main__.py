from videobridge.cli import main

main()
