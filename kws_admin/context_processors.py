from dataclasses import replace

from django.utils.functional import SimpleLazyObject

from accounts.access import OPERATOR_REFUSAL
from accounts.models import ADMINISTRATOR, account_role
from kws_admin.selectors import NodeSummary, node_summary


def node(request):
    """The header's facts about this node, on every page of a logged-in admin. For an
    operator every page is read-only, so the pages hide their write controls and say why
    as they do on a locked node (the server refuses his writes in any case).

    Read when a template first uses ``node``: an htmx fragment without the header (a
    Users list page, a sort, a search) costs no configuration or node-state query."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}

    def summary() -> NodeSummary:
        facts = node_summary()
        if account_role(request.user) != ADMINISTRATOR:
            facts = replace(facts, locked=True, lock_reason=OPERATOR_REFUSAL)
        return facts

    return {"node": SimpleLazyObject(summary)}
