"""An image message's prompt through the real openai SDK: the parts arrive as Chat Completions sends them."""

from __future__ import annotations

import base64

import openai

from gateways.whatsapp.content import with_images
from store.media import MediaKind, MediaRecord
from tests.llm_server import FakeLLM
from tests.media_files import image


async def test_image_parts_reach_the_server_as_data_urls(fake_llm: FakeLLM) -> None:
    photo = image("PNG", 640, 480)
    stored = MediaRecord("ME1", "c", "t1", MediaKind.IMAGE, "image/png", len(photo), data=photo, seq=2)
    messages = with_images(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "O que é isto?"}],
        [1, 2],
        {2: [stored]},
        "low",
    )
    async with openai.AsyncOpenAI(api_key="k", base_url=fake_llm.base_url, max_retries=0) as client:
        answer = await client.chat.completions.create(model="gpt-4o", messages=messages)  # type: ignore[arg-type]
    assert answer.choices[0].message.content == "Echo: O que é isto?"
    [record] = fake_llm.records
    text, picture = record.body["messages"][1]["content"]
    assert text == {"type": "text", "text": "O que é isto?"}
    assert picture["image_url"]["detail"] == "low"
    assert base64.b64decode(picture["image_url"]["url"].removeprefix("data:image/png;base64,")) == photo
    assert answer.usage is not None and answer.usage.prompt_tokens == record.prompt_tokens
