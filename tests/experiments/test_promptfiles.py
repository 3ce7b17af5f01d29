import pytest

from decodelab.common.errors import ApplicationError
from decodelab.experiments.promptfiles import MAX_PROMPTS_PER_SET, parse_upload


def test_csv_with_quoted_commas_newlines_bom_tags_and_default_ids():
    data = '\ufeffprompt,id,reference,tags\n"Hello, world",,Hi,greet;short\n"two\nlines",q2,,\n'.encode()
    fmt, rows = parse_upload(data, "set.csv")
    assert fmt == "csv"
    assert [(r.line, r.external_id, r.prompt, r.reference, r.tags) for r in rows] == [
        (2, "2", "Hello, world", "Hi", ["greet", "short"]),
        (4, "q2", "two\nlines", "", []),
    ]


def test_tsv_and_jsonl_with_duplicates_flagged_not_dropped():
    _fmt, rows = parse_upload(b"prompt\tid\nA\t1\nB\t2\nA\t3\n", "set.tsv")
    assert [(r.external_id, r.duplicate_of) for r in rows] == [("1", None), ("2", None), ("3", 2)]
    fmt, rows = parse_upload(b'{"prompt": "x", "id": 7, "tags": ["t"]}\n\n{"prompt": "x"}\n', "p.jsonl")
    assert fmt == "jsonl"
    assert [(r.external_id, r.tags, r.duplicate_of) for r in rows] == [("7", ["t"], None), ("3", [], 1)]


@pytest.mark.parametrize(
    ("data", "name", "fragment"),
    [
        (b"text,id\nhello,1\n", "a.csv", "line 1: unknown column 'text'"),
        (b"id\n1\n", "a.csv", "no 'prompt' column"),
        (b"prompt,prompt\na,b\n", "a.csv", "appears twice"),
        (b"prompt,id\nhello\n", "a.csv", "line 2: 1 values for 2 columns"),
        (b"prompt,id\nhello,1\n   ,2\n", "a.csv", "line 3: prompt must be a non-empty string"),
        (b"prompt,id\na,1\nb,1\n", "a.csv", "line 3: id '1' is already used by line 2"),
        (b'{"prompt": "a"}\n{"prompt": "b", "colour": 1}\n', "a.jsonl", "line 2: unknown key 'colour'"),
        (b'{"prompt": "a"}\nnot json\n', "a.jsonl", "line 2: not valid JSON"),
        (b'["a"]\n', "a.jsonl", "line 1: must be a JSON object"),
        (b'{"prompt": "a", "tags": "t"}\n', "a.jsonl", "line 1: tags must be"),
        (b"prompt\n" + "\xe9".encode("latin-1") + b"\n", "a.csv", "'a.csv' is not UTF-8"),
        (b"", "a.csv", "'a.csv' is empty"),
        (b"prompt\nx\n", "a.txt", "cannot tell the format"),
        (b"prompt\n" + b"x" * 8001 + b"\n", "a.csv", "line 2: prompt must be at most 8,000 characters"),
        (("prompt\n" + "p\n" * (MAX_PROMPTS_PER_SET + 1)).encode(), "a.csv", "at most 1,000 prompts"),
        (b"prompt\n" + b"x" * (2 * 1024 * 1024), "a.csv", "the limit is 2,097,152 bytes"),
    ],
)
def test_bad_files_are_refused_naming_the_line_and_field(data, name, fragment):
    with pytest.raises(ApplicationError) as caught:
        parse_upload(data, name)
    assert fragment in caught.value.message
    assert caught.value.field in ("file", "format")


def test_every_bad_row_is_reported_up_to_a_limit():
    data = ("prompt,id\n" + "".join(f" ,{i}\n" for i in range(30))).encode()
    with pytest.raises(ApplicationError) as caught:
        parse_upload(data, "a.csv")
    messages = caught.value.extra["errors"]["file"]
    assert messages[0].startswith("line 2:") and len(messages) == 21 and messages[-1] == "... and 10 more errors"
