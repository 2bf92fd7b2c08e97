"""The DNS zone: writes ZONE_FILE, a zone file in the usual master-file format.

create:  ZONE_FILE, DNS_ZONE, DNS_RECORDS (JSON list of {name, type, value}),
         SERVICE_NAME (gets an A record for 127.0.0.1), STAMP_TAGS
destroy: ZONE_FILE (and its folder when empty)
"""

import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the rendered root
from _common import action, env, env_abspath, env_json, fail, log, remove, remove_dir_if_empty, write_atomic

TYPES = ("A", "AAAA", "CNAME", "TXT")


def quote_txt(value):
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def main():
    what = action()
    path = env_abspath("ZONE_FILE")
    if what == "destroy":
        remove(path)
        remove_dir_if_empty(os.path.dirname(path))
        return
    zone = env("DNS_ZONE")
    records = env_json("DNS_RECORDS")
    records = list(records) + [{"name": env("SERVICE_NAME"), "type": "A", "value": "127.0.0.1"}]
    tags = env_json("STAMP_TAGS")
    lines = [
        f"; zone {zone}, written by Stamp's local-platform blueprint",
        f"; EnvironmentVersion {tags.get('EnvironmentVersion', 'unknown')}",
        f"$ORIGIN {zone}.",
        "$TTL 300",
        f"@ IN SOA ns1.{zone}. hostmaster.{zone}. ( 1 3600 600 86400 300 )",
        "@ IN NS ns1",
        "ns1 IN A 127.0.0.1",
    ]
    for record in records:
        name, rtype, value = record.get("name"), record.get("type"), record.get("value")
        if not isinstance(name, str) or not name or rtype not in TYPES or not isinstance(value, str) or not value:
            fail(f"bad record {record!r}: needs a name, a type in {TYPES} and a value")
        if any(c in value for c in "\r\n") or (rtype != "TXT" and any(c in value for c in ' ;"()')):
            fail(f"bad record {record!r}: the value holds a newline, or a space or one of ;\"() outside TXT")
        data = quote_txt(value) if rtype == "TXT" else value
        lines.append(f"{name} IN {rtype} {data}")
    write_atomic(path, "\n".join(lines) + "\n")
    log(f"wrote {path} ({len(records)} records)")


if __name__ == "__main__":
    main()
