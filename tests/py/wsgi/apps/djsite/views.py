from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def hello(request: HttpRequest, name: str) -> HttpResponse:
    return render(request, "hello.html", {"name": name, "items": ["a", "b", "c"]})


def form(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return HttpResponse(f"thanks, {request.POST.get('who', '')}")
    return render(request, "form.html")
