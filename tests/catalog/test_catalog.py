import io

import pytest
from django.core.management import call_command

from decodelab.catalog import selectors, services
from decodelab.catalog.models import LanguageModel
from decodelab.common.errors import ApplicationError
from decodelab.runs import services as runs_services

QWEN = [
    {
        "name": "qwen2.5-coder-0.5b",
        "display_name": "Qwen 0.5B",
        "tokenizer_family": "qwen2.5",
        "installed": True,
        "prepared": True,
        "size_bytes": 1_976_000_000,
        "chat_template": True,
    },
    {
        "name": "qwen2.5-coder-1.5b",
        "display_name": "Qwen 1.5B",
        "tokenizer_family": "qwen2.5",
        "installed": True,
        "prepared": False,
        "size_bytes": None,
        "chat_template": True,
    },
]


@pytest.mark.django_db
def test_a_worker_report_adds_its_models_and_pairs_those_that_share_a_tokenizer():
    assert selectors.offered_model_names() == ["smollm2-135m"]  # the default is always offered
    services.models_report(reporter="gpu-host-1:42", models=QWEN)
    services.models_report(reporter="gpu-host-1:42", models=QWEN)  # repeated reports update, not duplicate
    assert LanguageModel.objects.count() == 2
    models = {m["name"]: m for m in selectors.model_list()}
    assert set(models) == {"smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"}
    assert set(models["qwen2.5-coder-1.5b"]["draft_models"]) == {"qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"}
    assert models["smollm2-135m"]["draft_models"] == ["smollm2-135m"]
    assert models["qwen2.5-coder-0.5b"]["size_bytes"] == 1_976_000_000


@pytest.mark.django_db
def test_the_models_endpoint_lists_installed_models_with_sizes_and_drafts(api):
    services.models_report(reporter="w", models=QWEN)
    data = api.get("/api/v1/models/").json()
    names = [m["name"] for m in data]
    assert names[0] == "smollm2-135m" and "qwen2.5-coder-1.5b" in names
    target = next(m for m in data if m["name"] == "qwen2.5-coder-1.5b")
    assert "qwen2.5-coder-0.5b" in target["draft_models"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("model", "draft", "fragment"),
    [
        ("smollm2-135m", "qwen2.5-coder-0.5b", "does not share"),
        ("smollm2-135m", "llama-7b", "unknown model"),
    ],
)
def test_a_draft_model_must_be_known_and_share_the_targets_tokenizer(researcher, broker, model, draft, fragment):
    services.models_report(reporter="w", models=QWEN)
    preset = {"strategy": "speculative", "params": {"proposer": "draft_model", "draft_model": draft}}
    with pytest.raises(ApplicationError) as err:
        runs_services.comparison_create(owner=researcher.user, prompt="Hi", presets=[preset], model=model)
    assert err.value.field == "presets[0].params.draft_model" and fragment in err.value.message


@pytest.mark.django_db
def test_a_draft_model_no_worker_has_installed_is_refused(researcher, broker):
    preset = {"strategy": "speculative", "params": {"proposer": "draft_model", "draft_model": "qwen2.5-coder-1.5b"}}
    with pytest.raises(ApplicationError) as err:
        runs_services.comparison_create(
            owner=researcher.user, prompt="Hi", presets=[preset], model="qwen2.5-coder-0.5b"
        )
    assert err.value.field == "model"  # the target itself is not installed either


@pytest.mark.django_db
def test_sync_models_records_the_default_model_installed_on_this_machine():
    out = io.StringIO()
    call_command("sync_models", stdout=out)
    row = LanguageModel.objects.get(name="smollm2-135m")
    assert row.installed and row.prepared and row.size_bytes > 100_000_000
    assert "smollm2-135m" in out.getvalue()
