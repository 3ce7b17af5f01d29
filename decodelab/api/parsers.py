"""The API's JSON parser: DRF's, plus a nesting-depth bound (decodelab.common.jsonlimits)."""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ValidationError

from decodelab.common.jsonlimits import MAX_JSON_DEPTH, TooDeep, check_depth


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
            check_depth(data)
        except RecursionError:
            raise ValidationError({"body": [f"JSON nested deeper than {MAX_JSON_DEPTH} levels"]}) from None
        except TooDeep as exc:
            raise ValidationError({exc.path: [exc.message]}) from None
        return data
