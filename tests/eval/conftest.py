import pytest
from eval_rooms import rooms_source_fixture


@pytest.fixture
def rooms_source():
    return rooms_source_fixture()
