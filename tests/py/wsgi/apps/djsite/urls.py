from django.contrib import admin
from django.urls import path

from . import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("hello/<str:name>/", views.hello, name="hello"),
    path("form/", views.form, name="form"),
]
