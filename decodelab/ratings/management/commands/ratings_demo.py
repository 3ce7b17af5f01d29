"""Try blind rating without a GPU or a wait: finished comparisons with made-up outputs and timings,
annotator accounts, a session, and optionally simulated annotators who have already voted.

The comparisons go through the normal services (presets validated, configuration hashes computed,
results stored as a worker would store them); only the texts and timings are invented.
"""

from __future__ import annotations

import math
import random
import uuid

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from decodelab.common.errors import ApplicationError
from decodelab.ratings import services, serving
from decodelab.ratings.models import Mode
from decodelab.runs import services as runs_services
from decodelab.users.models import Role
from decodelab.users.services import user_create

PROMPTS = [
    "Describe a lighthouse in two sentences.",
    "Give one tip for keeping houseplants alive.",
    "Explain what a rainbow is to a child.",
    "Suggest a name for a bakery by the sea.",
    "Write a short thank-you note to a neighbour.",
    "Why do cats purr? Answer briefly.",
    "Recommend a weekend activity for a rainy day.",
    "Summarise the plot of Little Red Riding Hood in one line.",
    "What should I pack for a day hike?",
    "Give a friendly greeting for a team meeting.",
    "Describe the smell of fresh bread.",
    "How do I boil an egg?",
]
# (preset, style of the made-up answer, decode ms per token, latent quality for simulated votes)
PRESETS = [
    ({"strategy": "greedy"}, "plain", 8.0, 0.0),
    ({"strategy": "beam", "params": {"num_beams": 4}}, "careful", 21.0, 0.5),
    ({"strategy": "sampling", "params": {"temperature": 0.7, "top_p": 0.9}, "seed": 1}, "lively", 8.5, 0.9),
]
STYLES = {
    "plain": "{topic}: here is a simple answer. It covers the main point and stops.",
    "careful": "{topic}: here is a careful answer. It covers the main point, adds one detail, "
    "and it covers the main point again to be sure.",
    "lively": "{topic}! Picture it for a moment: the main point, told with a little colour and a "
    "friendly closing line.",
}


def _result(run, style: str, ms_per_token: float, topic: str) -> dict:
    text = STYLES[style].format(topic=topic)
    n = max(len(text.split()) * 4 // 3, 2)
    decode_ms = ms_per_token * (n - 1)
    return {
        "run_id": str(run.id),
        "attempt": 1,
        "outputs": [{"text": text, "token_ids": list(range(100, 100 + n)), "finish_reason": "stop"}],
        "prompt_token_ids": [1, 2, 3],
        "metrics": {
            "queue_wait_ms": 5.0,
            "model_load_ms": 0.0,
            "model_cache_hit": True,
            "prefill_ms": 15.0,
            "decode_ms": decode_ms,
            "new_tokens": n,
            "tokens_per_s": 1000.0 * (n - 1) / decode_ms,
            "total_ms": 15.0 + decode_ms,
            "peak_memory_bytes": None,
        },
        "environment": {
            "device": "cpu",
            "dtype": "float32",
            "seed": 0,
            "torch_version": "demo",
            "transformers_version": "demo",
            "batch_size": 1,
            "worker": "ratings-demo",
        },
    }


class Command(BaseCommand):
    help = "Create finished demo comparisons (invented outputs and timings), annotators and a rating session."

    def add_arguments(self, parser):
        parser.add_argument("--owner", required=True, help="Researcher who owns the comparisons and the session.")
        parser.add_argument("--annotators", default="rater", help="Comma-separated annotators (created if new).")
        parser.add_argument("--prompts", type=int, default=4, help="Prompts (3 pairs each in pairwise mode).")
        parser.add_argument("--mode", choices=Mode.values, default=Mode.PAIRWISE)
        parser.add_argument("--simulated", type=int, default=0, help="Extra simulated annotators who vote at once.")
        parser.add_argument("--reveal", action="store_true", help="Reveal configurations after each vote.")
        parser.add_argument("--name", default="Demo rating session")
        parser.add_argument("--seed", type=int, default=0, help="Seed of the simulated votes.")

    def handle(self, *args, owner, annotators, prompts, mode, simulated, reveal, name, seed, **options):
        user = get_user_model().objects.filter(username=owner, role=Role.RESEARCHER).first()
        if user is None:
            raise CommandError(f"no researcher {owner!r}")
        if not 1 <= prompts <= len(PROMPTS):
            raise CommandError(f"--prompts must be between 1 and {len(PROMPTS)}")
        names = [n.strip() for n in annotators.split(",") if n.strip()]
        sims = [f"sim-{uuid.uuid4().hex[:6]}" for _ in range(simulated)]
        for username in names + sims:
            if not get_user_model().objects.filter(username=username).exists():
                new = user_create(username=username, role=Role.ANNOTATOR)
                if username in names:
                    self.stdout.write(f"annotator {username}: password {new.password}  api token {new.token}")
        self.quality: dict = {}
        try:
            with transaction.atomic():
                comparison_ids = [self._comparison(user, prompt).id for prompt in PROMPTS[:prompts]]
            session = services.session_create(
                owner=user,
                name=name,
                mode=mode,
                comparison_ids=comparison_ids,
                annotators=names + sims,
                overlap=len(names) + len(sims),
                instructions="Read the request, then judge the answers on helpfulness and clarity.",
                reveal_after_vote=reveal,
            )
        except ApplicationError as exc:
            raise CommandError(f"{exc.field}: {exc.message}") from exc
        rng = random.Random(seed)
        votes = sum(self._simulate(session, get_user_model().objects.get(username=s), rng) for s in sims)
        self.stdout.write(f"session: {session.id}")
        self.stdout.write(f"task: /rate/t/{session.public_id}/")
        self.stdout.write(f"rankings: /rate/sessions/{session.id}/rankings/")
        self.stdout.write(f"items: {session.items.count()}, simulated votes: {votes}")

    def _comparison(self, user, prompt: str):
        comparison = runs_services.comparison_create(
            owner=user,
            prompt=prompt,
            presets=[preset for preset, *_ in PRESETS],
            max_new_tokens=64,
            chat=True,
            dispatch_now=False,
        )
        topic = prompt.rstrip(".?").split(" ", 1)[1].capitalize()
        for run, (_, style, ms, quality) in zip(comparison.runs.order_by("position"), PRESETS, strict=True):
            runs_services.run_store_result(result=_result(run, style, ms, topic))
            self.quality[run.id] = quality
        return comparison

    def _simulate(self, session, annotator, rng: random.Random) -> int:
        """Davidson-style votes from the latent qualities in PRESETS, with a little noise and some ties."""
        quality = {
            c.public_id: self.quality[c.run_id]
            for item in session.items.prefetch_related("candidates")
            for c in item.candidates.all()
        }
        count = 0
        while (assignment := serving.next_assignment(session=session, user=annotator)) is not None:
            order = assignment.shown_order
            if session.mode == Mode.PAIRWISE:
                diff = quality[order[0]] - quality[order[1]]
                p_left = 1 / (1 + math.exp(-2 * diff))
                draw = rng.random()
                choice = "tie" if draw < 0.15 else ("left" if rng.random() < p_left else "right")
                services.vote_cast(assignment=assignment, choice=choice)
            elif session.mode == Mode.LIKERT:
                value = min(5, max(1, round(3 + 2 * quality[order[0]] + rng.gauss(0, 0.7))))
                scores = dict.fromkeys(session.criteria, value)
                services.vote_cast(assignment=assignment, scores=scores)
            else:
                ranking = sorted(order, key=lambda pid: -(quality[pid] + rng.gauss(0, 0.4)))
                services.vote_cast(assignment=assignment, ranking=ranking)
            count += 1
        return count
