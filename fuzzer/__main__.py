from fuzzer.cli.commands import main

main()
