"""``python -m clothseg_tools.cli``: the same as the ``clothseg`` command."""

from . import main

if __name__ == "__main__":
    main(prog_name="clothseg")
