"""The llm-api benchmark harness: `bash bench/run.sh` (or `python -m bench --help`)."""
