"""canvas.core.modelrows: statements prepared once per database, not per connection object."""

import threading

import pytest
from django.db import connections

from canvas.core.authentication import token_with_user
from canvas.core.modelrows import prepared

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_builder_runs_once_for_every_connection_of_the_database():
    calls = []

    def builder(connection):
        calls.append(connection)
        return "statement"

    seen = []

    def use():
        connection, value = prepared(builder)
        seen.append((connection, value))
        connections.close_all()

    threads = [threading.Thread(target=use) for _ in range(3)]
    for thread in threads:
        thread.start()
        thread.join()
    use()
    assert len(calls) == 1
    assert [value for _, value in seen] == ["statement"] * 4
    # Each caller gets its own connection (under ASGI, each request context has one).
    assert len({id(connection) for connection, _ in seen}) >= 2


def test_builders_made_per_call_are_kept_by_their_key():
    built = []

    def builder_for(columns):
        def build(connection):
            built.append(columns)
            return ("built for", columns)

        return build

    first = prepared(builder_for(("a", "b")), key=("test-modelrows", "a", "b"))[1]
    again = prepared(builder_for(("a", "b")), key=("test-modelrows", "a", "b"))[1]
    other = prepared(builder_for(("c",)), key=("test-modelrows", "c"))[1]
    assert first == again == ("built for", ("a", "b"))
    assert other == ("built for", ("c",))
    assert built == [("a", "b"), ("c",)]  # the second closure for ("a", "b") was not called


def test_reads_from_other_threads_connections_use_the_prepared_converters(user):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=user)
    assert token_with_user(token.key).user.pk == user.pk  # prepared on this connection
    found = []

    def read():
        found.append(token_with_user(token.key))
        connections.close_all()

    thread = threading.Thread(target=read)
    thread.start()
    thread.join()
    (other,) = found
    assert other.user.pk == user.pk
    assert other.created == token.created
    assert other.user.date_joined == user.date_joined
    assert other.user.is_active is True
