"""The site's front door: each role starts on its own page."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect


@login_required
def home(request):
    """Annotators go to their rating queue (researcher pages are closed to them, and they must
    not see what produced the texts); researchers to their comparisons."""
    if getattr(request.user, "is_researcher", False):
        return redirect("runs:comparison_list")
    return redirect("ratings:queue")
