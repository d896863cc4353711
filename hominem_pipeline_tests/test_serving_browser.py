"""The chat page in a real headless Chromium (Debian's chromium + chromedriver, driven by selenium): send a
message, see the streamed reply, set two labels, regenerate and pick, correct, reload, and find every
event in the event log exactly once. Skips when no browser is installed, except under CI=true, where a
missing browser is a failure (`make test` installs it)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from hominem_pipeline.events.schema import FeedbackEvent, MessageEvent
from hominem_pipeline.serving.server import BackgroundServer, build
from hominem_pipeline_tests.serving_fixtures import home_env, logged_events, make_home


def test_chat_page_labels_regenerate_pick_correct_and_reload(
    driver, tmp_path: Path, tiny_model_dir: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    def wait(condition, what: str):  # noqa: ANN001, ANN202
        return WebDriverWait(driver, 30).until(lambda d: condition(d), message=what)

    def replies(d):  # noqa: ANN001, ANN202
        return d.find_elements(By.CSS_SELECTOR, ".msg.assistant[data-id]")

    home = make_home(tmp_path, tiny_model_dir, {"max_new_tokens": 8, "temperature": 1.0})
    with home_env(home) as settings:
        built = build(settings, "127.0.0.1", watch=False)
        with BackgroundServer(built) as url:
            driver.get(url + "/")
            box = wait(lambda d: d.find_element(By.ID, "prompt"), "the composer")
            box.send_keys("Hello, who are you?", Keys.ENTER)
            wait(lambda d: len(replies(d)) == 1, "the streamed reply, saved")
            first_id = replies(driver)[0].get_attribute("data-id")

            for label in ("😊+1", "🚀"):
                driver.find_element(
                    By.CSS_SELECTOR, f'.msg[data-id="{first_id}"] button[data-label="{label}"]'
                ).click()
                wait(
                    lambda d, label=label: (
                        "on"
                        in d.find_element(
                            By.CSS_SELECTOR, f'.msg[data-id="{first_id}"] button[data-label="{label}"]'
                        ).get_attribute("class")
                    ),
                    f"label {label} saved",
                )

            driver.find_element(By.CSS_SELECTOR, f'.msg[data-id="{first_id}"] button.regenerate').click()
            wait(lambda d: len(replies(d)) == 2, "the second reply")
            second_id = next(
                e.get_attribute("data-id") for e in replies(driver) if e.get_attribute("data-id") != first_id
            )
            driver.find_element(By.CSS_SELECTOR, f'.msg[data-id="{second_id}"] button.pick').click()
            wait(
                lambda d: d.find_elements(By.CSS_SELECTOR, f'.msg.chosen[data-id="{second_id}"]'),
                "the choice",
            )

            driver.find_element(By.CSS_SELECTOR, f'.msg[data-id="{first_id}"] button.correct').click()
            driver.find_element(
                By.CSS_SELECTOR, f'.msg[data-id="{first_id}"] .correction-box textarea'
            ).send_keys("I am hominem, a small local model.")
            driver.find_element(By.CSS_SELECTOR, f'.msg[data-id="{first_id}"] .correction-box button').click()
            wait(lambda d: d.find_elements(By.CSS_SELECTOR, ".msg.correction"), "the correction")
            driver.find_element(By.CSS_SELECTOR, f'.msg[data-id="{first_id}"] button.show-reward').click()
            driver.save_screenshot(str(tmp_path / "chat.png"))

            driver.refresh()
            wait(lambda d: len(replies(d)) == 2, "the conversation after a reload")
            on = {
                b.get_attribute("data-label")
                for b in driver.find_elements(By.CSS_SELECTOR, f'.msg[data-id="{first_id}"] button.label.on')
            }
            assert on == {"😊+1", "🚀"}
            assert driver.find_elements(By.CSS_SELECTOR, f'.msg.chosen[data-id="{second_id}"]')
            assert driver.find_elements(By.CSS_SELECTOR, f'.msg.rejected[data-id="{first_id}"]')
            assert "I am hominem" in driver.find_element(By.CSS_SELECTOR, ".msg.correction").text
            shown = driver.find_element(By.CSS_SELECTOR, f'.msg[data-id="{first_id}"] .text').text

        events = logged_events(settings)
    assert max(Counter(e.event_id for e in events).values()) == 1
    kinds = Counter(
        ("feedback", e.kind) if isinstance(e, FeedbackEvent) else ("message", e.role) for e in events
    )
    assert kinds == {
        ("message", "user"): 2,
        ("message", "assistant"): 2,
        ("feedback", "emoji"): 2,
        ("feedback", "preference"): 1,
    }
    by_id = {e.event_id: e for e in events}
    first = by_id[first_id]
    assert isinstance(first, MessageEvent) and first.content.strip() == shown.strip()
    emojis = {e.emoji for e in events if isinstance(e, FeedbackEvent) and e.kind == "emoji"}
    assert emojis == {"😊+1", "🚀"}
    pref = next(e for e in events if isinstance(e, FeedbackEvent) and e.kind == "preference")
    assert (pref.chosen_message_id, pref.rejected_message_id) == (second_id, first_id)
