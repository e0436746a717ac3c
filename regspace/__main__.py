from regspace.cli import main

raise SystemExit(main())
