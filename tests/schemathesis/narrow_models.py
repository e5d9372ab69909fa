"""Narrow the proxy bodies' `model` in the served OpenAPI document to the
gateway's configured aliases, so schema-conforming requests reach routing,
translation and the upstream path instead of stopping at 404 (negative
cases still try other names).

usage: narrow_models.py SERVED_OPENAPI_JSON MODELS_JSON OUT
"""
import json
import sys

served, models, out = sys.argv[1:4]
doc = json.load(open(served))
ids = [m["id"] for m in json.load(open(models))["data"]]
embed = [i for i in ids if "embed" in i] or ids
chat = [i for i in ids if "embed" not in i] or ids
schemas = doc["components"]["schemas"]
for name, names in (
    ("ChatCompletionRequest", chat),
    ("MessagesRequest", chat),
    ("EmbeddingsRequest", embed),
):
    schemas[name]["properties"]["model"] = {"type": "string", "enum": names}
json.dump(doc, open(out, "w"), indent=1)
