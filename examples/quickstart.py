"""The README quick start, as a file. Needs OPENAI_API_KEY (or run `metricaos demo` for a keyless run)."""

import openai

from metricaos_sdk import Meter, QuotaExceeded

meter = Meter("metricaos.db")                       # embedded default: a local SQLite file
meter.set_quota("cus_123", tokens=50_000, period="month")   # hard limit unless told otherwise
client = meter.wrap(openai.OpenAI())                # still an openai.OpenAI: isinstance holds


@meter.track(feature="ai_support_reply")            # on def and async def alike
def support_reply(question: str) -> str:
    r = client.chat.completions.create(model="gpt-4.1-mini",
                                       messages=[{"role": "user", "content": question}])
    return r.choices[0].message.content


with meter.context(customer_id="cus_123", user_id="user_456", workspace_id="ws_789"):
    try:
        support_reply("Where is my order?")
    except QuotaExceeded as exc:                     # raised before any request is sent
        print(exc.customer_id, exc.limit, exc.used, exc.resets_at)

meter.flush()
print(meter.usage("cus_123"))      # period, limit, used, remaining, by feature, by model, cost
for event in meter.events(customer_id="cus_123"):  # UsageEvent (pydantic) objects
    print(event.model, event.input_tokens, event.output_tokens, event.cost_usd)
