"""The Typer layer: one thin module per command (parse, call the core, render)."""
