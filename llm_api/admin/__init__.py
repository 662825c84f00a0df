"""Key administration shared by the admin API (`routers/admin.py`) and the operators' command line
(`python -m llm_api.admin`): request schemas, the `KeyAdmin` service, the live-usage seam."""
