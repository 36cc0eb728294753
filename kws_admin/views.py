from django.shortcuts import render


def node_header(request):
    """The header fragment, polled by htmx so mode, phase and lock stay current."""
    return render(request, "kws_admin/partials/node_header.html")


def placeholder(request, *, title: str, text: str):
    return render(request, "kws_admin/placeholder.html", {"title": title, "text": text})
