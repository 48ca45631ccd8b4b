"""A strawberry GraphQL server (uvicorn) speaking graphql-transport-ws for
tests/real_servers.rs, with the reference server's 3 s wait for `connection_init`: a
client that sends anything else first for 3 s is closed with 4408.

    graphql_ws_server.py PORT
"""
import asyncio
import sys
from datetime import timedelta
from typing import AsyncGenerator

import strawberry
import uvicorn
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL


@strawberry.type
class Order:
    id: int


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        return "hi"


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def orders(self) -> AsyncGenerator[Order, None]:
        for i in range(100):
            yield Order(id=i)
            await asyncio.sleep(0.2)


schema = strawberry.Schema(query=Query, subscription=Subscription)
app = GraphQL(schema, subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL],
              connection_init_wait_timeout=timedelta(seconds=3))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
