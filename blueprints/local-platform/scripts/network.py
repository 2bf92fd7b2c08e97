"""The network: writes NETWORK_FILE (network.json) with the CIDR and its subnets.

create:  NETWORK_FILE, NETWORK_CIDR, PUBLIC_SUBNETS, PRIVATE_SUBNETS (JSON lists), STAMP_TAGS
destroy: NETWORK_FILE
"""

import ipaddress
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the rendered root
from _common import action, env, env_abspath, env_json, fail, log, remove, write_json


def main():
    what = action()
    path = env_abspath("NETWORK_FILE")
    if what == "destroy":
        remove(path)
        return
    cidr = env("NETWORK_CIDR")
    network = ipaddress.IPv4Network(cidr)
    subnets = {"public": env_json("PUBLIC_SUBNETS"), "private": env_json("PRIVATE_SUBNETS")}
    seen = []
    for kind, items in subnets.items():
        for item in items:
            subnet = ipaddress.IPv4Network(item)
            if not subnet.subnet_of(network):
                fail(f"{kind} subnet {subnet} is not inside {network}")
            if any(subnet.overlaps(other) for other in seen):
                fail(f"{kind} subnet {subnet} overlaps another subnet")
            seen.append(subnet)
    zones = max(len(subnets["public"]), len(subnets["private"]))
    write_json(
        path,
        {
            "cidr": str(network),
            "zones": [
                {
                    "name": f"zone-{chr(ord('a') + i)}",
                    "public_subnet": subnets["public"][i] if i < len(subnets["public"]) else None,
                    "private_subnet": subnets["private"][i] if i < len(subnets["private"]) else None,
                }
                for i in range(zones)
            ],
            "tags": env_json("STAMP_TAGS"),
        },
    )
    log(f"wrote {path} ({network}, {zones} zones)")


if __name__ == "__main__":
    main()
