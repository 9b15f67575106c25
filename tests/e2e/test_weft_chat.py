"""`weft chat` and `weft generate --chat` against the real weft-server on the
default model: the conversation is carried from turn to turn (what the
server rendered is echoed back with --show-prompt, so the test reads what
the model saw), replies stream to stdout, /exit ends the session."""
import os
import re
import subprocess

import pytest

from conftest import BUILD, DEFAULT_MODEL, Server

CLIENT = os.path.join(BUILD, "server", "weft")
# The default model's template: a default system message, then ChatML.
TURN = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def chat_server():
    if not os.path.exists(DEFAULT_MODEL):
        pytest.skip("default model absent (tools/fetch_model.sh)")
    server = Server(DEFAULT_MODEL)
    yield server
    assert server.stop() == 0


def run_client(server, stdin, *args):
    return subprocess.run(
        [CLIENT, *args, "--server", server.address, "--temperature", "0",
         "--show-prompt"],
        input=stdin, capture_output=True, text=True, timeout=300)


def prompts_of(stderr):
    return re.findall(r"\[prompt\]\n(.*?)\[/prompt\]\n", stderr, re.S)


def prompt_tokens_of(stderr):
    return [int(n) for n in re.findall(r"^\[(\d+) prompt \+", stderr, re.M)]


def test_weft_chat_carries_the_conversation_through_three_turns(chat_server):
    turns = ["What is the capital of France?", "And of Italy?", "Thank you!"]
    done = run_client(chat_server, "\n".join(turns) + "\n", "chat", "--max-tokens", "8")
    assert done.returncode == 0, done.stderr
    prompts = prompts_of(done.stderr)
    assert len(prompts) == 3, done.stderr
    assert prompts[0].startswith("<|im_start|>system\n")
    assert prompts[0].endswith(TURN.format(turns[0]))
    # Turn n's prompt is turn n-1's, the reply the client streamed, and the
    # new user line.
    replies = []
    for n in (1, 2):
        assert prompts[n].startswith(prompts[n - 1])
        rest = prompts[n][len(prompts[n - 1]):]
        reply, _, tail = rest.partition("<|im_end|>\n")
        assert tail == TURN.format(turns[n])
        assert reply.strip(), "an empty reply proves nothing"
        replies.append(reply)
    assert done.stdout.startswith(replies[0] + "\n" + replies[1] + "\n")
    assert len(done.stdout.splitlines()) >= 3
    tokens = prompt_tokens_of(done.stderr)
    assert len(tokens) == 3 and tokens[0] < tokens[1] < tokens[2], tokens


def test_weft_chat_stops_at_exit(chat_server):
    done = run_client(chat_server, "Hi\n/exit\nNever sent\n", "chat", "--max-tokens", "2")
    assert done.returncode == 0, done.stderr
    prompts = prompts_of(done.stderr)
    assert len(prompts) == 1
    assert "Never sent" not in done.stderr


def test_weft_chat_system_flag_replaces_the_default_system_message(chat_server):
    done = run_client(chat_server, "Hi\n", "chat", "--system", "Answer in French.",
                      "--max-tokens", "2")
    assert done.returncode == 0, done.stderr
    assert prompts_of(done.stderr) == [
        "<|im_start|>system\nAnswer in French.<|im_end|>\n" + TURN.format("Hi")]


def test_weft_generate_chat_uses_the_models_template(chat_server):
    done = run_client(chat_server, "", "generate", "--chat", "--prompt", "Hi",
                      "--max-tokens", "2")
    assert done.returncode == 0, done.stderr
    [prompt] = prompts_of(done.stderr)
    assert prompt.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert prompt.endswith(TURN.format("Hi"))
