from dataclasses import replace

from accounts.access import OPERATOR_REFUSAL
from accounts.models import ADMINISTRATOR, account_role
from kws_admin.selectors import node_summary


def node(request):
    """The header's facts about this node, on every page of a logged-in admin. For an
    operator every page is read-only, so the pages hide their write controls and say why
    as they do on a locked node (the server refuses his writes in any case)."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    summary = node_summary()
    if account_role(request.user) != ADMINISTRATOR:
        summary = replace(summary, locked=True, lock_reason=OPERATOR_REFUSAL)
    return {"node": summary}
