"""Administration > Audit: the audit trail of the pair (``core.audit``), filtered and paged.

Read-only everywhere (a backup shows the trail it received), so never locked."""

from django.core.paginator import Paginator
from django.http import QueryDict
from django.shortcuts import render

from core.audit import audit_records
from kws_admin.audit_forms import AuditFilterForm

PAGE_SIZE = 50


def audit_list(request):
    form = AuditFilterForm(request.GET or None)
    valid = not form.is_bound or form.is_valid()
    records = audit_records().none()
    if valid:
        data = form.cleaned_data if form.is_bound else {}
        records = audit_records(
            account=data.get("account", ""),
            kind=data.get("kind", ""),
            object_id=data.get("object", ""),
            since=data.get("since"),
            until=data.get("until"),
            text=data.get("text", ""),
        )
    page = Paginator(records, PAGE_SIZE).get_page(request.GET.get("page"))
    query = QueryDict(mutable=True)
    query.update({k: v for k, v in request.GET.items() if k != "page" and v})
    context = {
        "form": form,
        "page": page,
        "query": query.urlencode(),
        "filtered": bool(query),
    }
    template = "kws_admin/partials/audit_table.html" if request.htmx else "kws_admin/audit.html"
    return render(request, template, context, status=200 if valid else 400)
