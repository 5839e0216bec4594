# Many small dicts created, updated, merged and dropped, as keyword arguments
# and JSON-like records make them.
import json

records = []
for i in range(200000):
    r = {"id": i, "name": f"n{i}", "tags": [i % 3, i % 5], "score": i * 0.5}
    r.update(extra=i % 7, flag=bool(i & 1))
    records.append(r)
    if len(records) > 5000:
        merged = {**records.pop(0), **records.pop(0)}
        del merged["tags"]
blob = json.dumps(records[:2000])
print(len(records), len(json.loads(blob)), sum(r["extra"] for r in records))
