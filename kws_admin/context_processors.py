from kws_admin.selectors import node_summary


def node(request):
    """The header's facts about this node, on every page of a logged-in admin."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    return {"node": node_summary()}
