from ppkt.cli import main

raise SystemExit(main())
