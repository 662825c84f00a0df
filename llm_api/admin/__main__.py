"""`python -m llm_api.admin` (see `llm_api.admin.cli`)."""

from llm_api.admin.cli import main

raise SystemExit(main())
