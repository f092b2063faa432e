from popek.cli import main

raise SystemExit(main())
