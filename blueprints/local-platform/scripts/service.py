"""The service: writes SERVICE_DIR/config.json and SERVICE_DIR/status.json.

create:  SERVICE_DIR, SERVICE_NAME, SERVICE_PORT, SERVICE_REPLICAS, SERVICE_FQDN,
         SERVICE_SUBNETS (JSON list), DATABASE_PATH, STAMP_TAGS
destroy: SERVICE_DIR (its files, availability.json too, then the folder when empty)
"""

import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the rendered root
from _common import action, env, env_abspath, env_int, env_json, log, remove, remove_dir_if_empty, write_json


def main():
    what = action()
    service_dir = env_abspath("SERVICE_DIR")
    config_file = os.path.join(service_dir, "config.json")
    status_file = os.path.join(service_dir, "status.json")
    if what == "destroy":
        remove(status_file)
        remove(config_file)
        # Written by `data.py availability` (standby/serving), if the environment was ever switched.
        if os.path.exists(os.path.join(service_dir, "availability.json")):
            remove(os.path.join(service_dir, "availability.json"))
        remove_dir_if_empty(service_dir)
        return
    name = env("SERVICE_NAME")
    port = env_int("SERVICE_PORT", minimum=1)
    replicas = env_int("SERVICE_REPLICAS", minimum=1)
    subnets = env_json("SERVICE_SUBNETS") or [None]
    tags = env_json("STAMP_TAGS")
    write_json(
        config_file,
        {
            "name": name,
            "fqdn": env("SERVICE_FQDN"),
            "port": port,
            "replicas": replicas,
            "database": {"engine": "sqlite", "path": env_abspath("DATABASE_PATH")},
            "tags": tags,
        },
    )
    write_json(
        status_file,
        {
            "name": name,
            "status": "running",
            "endpoint": f"http://127.0.0.1:{port}",
            "version": tags.get("EnvironmentVersion", "unknown"),
            "replicas": [
                {"index": i, "port": port + i, "subnet": subnets[i % len(subnets)], "status": "running"}
                for i in range(replicas)
            ],
        },
    )
    log(f"wrote {config_file} and {status_file} ({replicas} replicas)")


if __name__ == "__main__":
    main()
