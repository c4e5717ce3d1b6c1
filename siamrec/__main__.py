from siamrec.cli import main

main()
