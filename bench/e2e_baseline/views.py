"""The two memory endpoints, as small as DRF allows."""

from django.db import transaction
from django.shortcuts import get_object_or_404
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from bench.e2e_baseline.models import Context, Memory, MemoryTag


class TagSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=50)


class MemorySerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    context_id = serializers.IntegerField()
    author = serializers.CharField(source="author.username", read_only=True, allow_null=True)
    kind = serializers.CharField(max_length=20, default="note")
    source = serializers.CharField(max_length=100, allow_blank=True, default="")
    content = serializers.CharField()
    metadata = serializers.JSONField(default=dict)
    tags = TagSerializer(many=True, default=list)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)


class MemoryListView(APIView):
    def post(self, request):
        serializer = MemorySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        tags = sorted({tag["name"].lower() for tag in data.pop("tags")})
        context = get_object_or_404(Context, pk=data.pop("context_id"), owner=request.user)
        with transaction.atomic():
            memory = Memory.objects.create(context=context, author=request.user, **data)
            MemoryTag.objects.bulk_create([MemoryTag(memory=memory, name=name) for name in tags])
        memory = Memory.objects.select_related("author").prefetch_related("tags").get(pk=memory.pk)
        return Response(MemorySerializer(memory).data, status=status.HTTP_201_CREATED)


class MemoryDetailView(APIView):
    def get(self, request, memory_id: int):
        memory = get_object_or_404(
            Memory.objects.select_related("author").prefetch_related("tags"),
            pk=memory_id,
            context__owner=request.user,
        )
        return Response(MemorySerializer(memory).data)
