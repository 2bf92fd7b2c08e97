"""The account's directory, <root_dir>/<account>/: created first, removed last.

create:  ENV_DIR, STAMP_TAGS -> mkdir -p ENV_DIR and write ENV_DIR/stamp.json
destroy: ENV_DIR             -> remove stamp.json, then ENV_DIR if it is empty
                                (anything else left in it is kept and reported)
"""

import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the rendered root
from _common import action, env_abspath, env_json, log, remove, remove_dir_if_empty, write_json


def main():
    what = action()
    env_dir = env_abspath("ENV_DIR")
    marker = os.path.join(env_dir, "stamp.json")
    if what == "create":
        os.makedirs(env_dir, exist_ok=True)
        write_json(marker, {"tags": env_json("STAMP_TAGS")})
        log(f"created {env_dir}/")
    else:
        remove(marker)
        remove_dir_if_empty(env_dir)


if __name__ == "__main__":
    main()
