"""Kafka messages into runs: the topic sensor factory the signals and trading domains share, and
the run config (MessageConfig) of the jobs it launches.

Topic sensors keep their position (partition -> next offset) in the sensor cursor:
the daemon stores the cursor together with the tick's run requests, so a restarted
daemon or broker resumes exactly after the last message it turned into a run. The
run_key (candidate or decision id) makes a redelivered or republished message a
no-op. A message that does not parse, is too large, or names a symbol, strategy or
interval that is not configured goes to `<topic>.dlq` with the reason, and the sensor
moves on.
"""

from collections.abc import Callable

import dagster as dg

from coin_platform.defs.resources import KafkaResource
from coin_platform.events.kafka import Message, dead_letter, position_from_cursor, position_to_cursor, publish
from coin_platform.events.schemas import Allowlist, Candidate, Decision, MessageError
from coin_platform.settings import Settings


class MessageConfig(dg.Config):
    """The Kafka message (JSON) the run was launched for."""

    message: str


def build_topic_sensor(
    name: str,
    topic: str,
    job: dg.JobDefinition,
    op_name: str,
    parse: Callable[[bytes], Candidate | Decision],
    describe: Callable[[Candidate | Decision], tuple[str, dict[str, str]]],
    settings: Settings,
    description: str,
) -> dg.SensorDefinition:
    """A sensor requesting one `job` run per valid message of `topic` (run_key and tags from `describe`)."""
    events = settings.config.events
    dead_letter_topic = topic + events.dead_letter_suffix
    allowlist = Allowlist.from_config(settings.config)

    def run_request(message: Message) -> dg.RunRequest:
        if message.value is None:
            raise MessageError("empty message")
        item = parse(message.value)
        allowlist.check(item)
        run_key, tags = describe(item)
        return dg.RunRequest(
            run_key=run_key,
            # MessageConfig of the op that handles the message
            run_config={"ops": {op_name: {"config": {"message": message.value.decode()}}}},
            tags={**tags, "coin/topic": topic, "coin/offset": f"{message.partition}:{message.offset}"},
        )

    @dg.sensor(
        name=name,
        job=job,
        minimum_interval_seconds=events.sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=description,
    )
    def topic_sensor(context: dg.SensorEvaluationContext, kafka: KafkaResource) -> dg.SensorResult:
        position = position_from_cursor(context.cursor)
        messages, after = kafka.read(topic, position, events.max_messages_per_tick)
        runs, dead = [], []
        for message in messages:
            try:
                runs.append(run_request(message))
            # Whatever one message does, it must not stop the topic: the parser raises MessageError
            # for every bad input it knows; anything else is dead-lettered too, named by its type.
            except Exception as exc:  # noqa: BLE001
                reason = str(exc) if isinstance(exc, MessageError) else f"{type(exc).__name__}: {exc}"
                context.log.warning(f"{topic}@{message.partition}:{message.offset} to {dead_letter_topic}: {reason}")
                dead.append(dead_letter(topic, message, reason))
        if dead:
            kafka.ensure_topics([dead_letter_topic])
            with kafka.producer() as producer:
                publish(producer, dead_letter_topic, dead)
        if not messages:
            return dg.SensorResult(skip_reason=f"no new messages on {topic}", cursor=position_to_cursor(after))
        return dg.SensorResult(run_requests=runs, cursor=position_to_cursor(after))

    return topic_sensor
