from atlas_cli.main import main

main()
