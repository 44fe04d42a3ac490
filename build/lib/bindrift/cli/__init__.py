"""The `bindrift` command line (typer). Stages are imported inside the commands that need them."""
