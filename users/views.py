from django.core.paginator import Paginator
from django.shortcuts import render

from users.models import DectUser


def user_list(request):
    page = Paginator(DectUser.objects.all(), 50).get_page(request.GET.get("page"))
    return render(request, "users/list.html", {"page": page})
