"""The output cache stays under WORKFLOW_CACHE_MAX_ENTRIES, pruned once per tenth written."""

from datetime import timedelta

import pytest
from django.utils import timezone

from workflows import cache
from workflows.models import NodeOutputCache
from workflows.rowwriter import Writes

pytestmark = pytest.mark.django_db


def test_the_bound_holds_with_one_prune_per_tenth_written(user, settings, monkeypatch):
    settings.WORKFLOW_CACHE_MAX_ENTRIES = 100
    monkeypatch.setattr(cache, "_writes_since_prune", 0)
    prunes = []
    real_prune = cache.cache_prune

    def counted_prune():
        prunes.append(NodeOutputCache.objects.count())
        return real_prune()

    monkeypatch.setattr(cache, "cache_prune", counted_prune)
    start = timezone.now()
    sizes = []
    # Given 600 rows written 3 at a time, each a little newer than the last,
    for batch in range(200):
        rows = [
            cache.cache_row(
                key=f"k{batch}-{i}",
                owner_id=user.id,
                node_type="text",
                outputs={"text": "x"},
                now=start + timedelta(milliseconds=3 * batch + i),
            )
            for i in range(3)
        ]
        writes = Writes()
        cache.cache_rows_write(rows, writes)
        writes.run()
        cache.cache_prune_maybe(written=3)
        sizes.append(NodeOutputCache.objects.count())
    # then the table never held more than the bound, a prune came once per tenth (10 rows:
    # every fourth batch of 3), and each left room for the next tenth.
    assert max(sizes) <= 100
    assert len(prunes) == 600 // 12
    assert sizes[-1] <= 100
    after_prunes = [size for batch, size in enumerate(sizes) if batch % 4 == 3]
    assert max(after_prunes[10:]) == 90
    # The newest rows are the ones kept.
    assert NodeOutputCache.objects.filter(key="k199-2").exists()
    assert not NodeOutputCache.objects.filter(key="k0-0").exists()
