from olmo_cli.cli.app import main

main()
