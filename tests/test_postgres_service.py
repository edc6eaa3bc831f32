"""The PostgreSQL server that `make test` starts (scripts/postgres.sh) answers, and is recent enough."""

from sqlalchemy import create_engine, text


def test_postgres_answers_and_is_at_least_13(postgres_url):
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("select 1")).scalar_one() == 1
            assert int(connection.execute(text("show server_version_num")).scalar_one()) >= 130000
    finally:
        engine.dispose()
