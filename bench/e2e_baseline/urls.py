from django.urls import path

from bench.e2e_baseline import views

urlpatterns = [
    path("api/v2/memories/", views.MemoryListView.as_view()),
    path("api/v2/memories/<int:memory_id>/", views.MemoryDetailView.as_view()),
    path("api/v1/memories/<int:memory_id>/", views.MemoryDetailView.as_view()),
]
