"""The `cv` command and what its subcommands print, plot and predict."""
