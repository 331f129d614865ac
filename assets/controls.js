// Decoding Playground: the page's controls answer every way a person edits them (run once by demo.launch(js=...)).
//
// 1. The prompt. Gradio 6's textbox sends its "input" event on a key press only: a pasted prompt, text from an
//    input method (composed, then committed without a key press per character), autofill, a cut or a deletion
//    left the preview on the old prompt. Any edit of the prompt that no key press announced now announces
//    itself the way a key press does (a keypress event on the box, which Gradio's textbox turns into its "input"
//    event: the prompt's preview trigger); a composition is announced once, when it is committed.
// 2. Number boxes with a range (a slider's box, Seed, N ...). Gradio sends a slider box's value at each key
//    stroke and refuses one out of the slider's range on the server (a red "Error" toast, an error badge on the
//    outputs, a traceback in the log); an unfinished value ("-", "") went out as nothing. Now a value out of
//    range, or not a number yet, is not sent while it is typed; when the box is left (or Enter is pressed) it
//    is brought into range, with one line under the control saying so (it replaces the one before, and goes
//    when a button is next pressed), and sent.
() => {
  const PROMPT = '#dp-prompt textarea';
  let typed = false; // a real key press announced the prompt's next edit
  document.addEventListener('keypress', (e) => { if (e.isTrusted && e.target.matches?.(PROMPT)) { typed = true; } }, true);
  const announce = (box) => setTimeout(() => box.dispatchEvent(new KeyboardEvent('keypress', { key: 'Unidentified' })), 0);
  document.addEventListener('compositionend', (e) => { if (e.target.matches?.(PROMPT)) { typed = false; announce(e.target); } }, true);

  const ranged = (t) => t instanceof HTMLInputElement && t.type === 'number' && (t.min !== '' || t.max !== '');
  const bounds = (box) => [box.min === '' ? -Infinity : Number(box.min), box.max === '' ? Infinity : Number(box.max)];
  const within = (box) => { const v = box.value.trim() === '' ? NaN : Number(box.value); const [lo, hi] = bounds(box);
    return Number.isFinite(v) && v >= lo && v <= hi; };
  const good = new WeakMap(); // each box's last value in range (what an empty box goes back to)

  document.addEventListener('input', (e) => {
    const box = e.target;
    if (box.matches?.(PROMPT)) {
      if (!typed && !e.isComposing) { announce(box); }
      typed = false;
    } else if (ranged(box)) {
      if (!within(box)) { e.stopImmediatePropagation(); return; } // not sent: brought into range when committed
      good.set(box, box.value);
      if (e.isTrusted) { box.closest('.block')?.querySelector('.dp-range-note')?.remove(); } // typed again, in range
    }
  }, true);
  document.addEventListener('focusin', (e) => { if (ranged(e.target) && within(e.target)) { good.set(e.target, e.target.value); } }, true);

  function note(box, text) {
    document.querySelectorAll('.dp-range-note').forEach((n) => n.remove());
    if (!text) { return; }
    const line = document.createElement('div');
    line.className = 'dp-notice dp-range-note';
    line.setAttribute('role', 'status');
    line.textContent = text;
    const block = box.closest('.block');
    const row = box.closest('.row');
    if (block && (block.offsetWidth >= 200 || !row)) { block.appendChild(line); } else { (row || box.parentElement).after(line); }
  }
  function commit(box) {
    if (!ranged(box) || within(box)) { return; }
    const [lo, hi] = bounds(box);
    const typedValue = box.value.trim();
    const block = box.closest('.block');
    const name = (block?.querySelector('[data-testid=block-info]') || block?.querySelector('label'))?.textContent.trim() || 'This value';
    const v = Number(typedValue);
    if (typedValue === '' || !Number.isFinite(v)) {
      box.value = good.get(box) ?? String(Math.min(Math.max(0, lo), hi));
      note(box, `${name} needs a number: it stays at ${box.value}.`);
    } else if (v > hi) {
      box.value = String(hi);
      note(box, `${typedValue} is above ${name}'s maximum, ${hi}: set to ${hi}.`);
    } else {
      box.value = String(lo);
      note(box, `${typedValue} is below ${name}'s minimum, ${lo}: set to ${lo}.`);
    }
    good.set(box, box.value);
    box.dispatchEvent(new Event('input', { bubbles: true })); // now in range: sent as a typed value is
  }
  document.addEventListener('keydown', (e) => { if (e.key === 'Enter') { commit(e.target); } }, true);
  // the person moves on (Step, Run, a tab ...): the line has been read
  document.addEventListener('click', (e) => { if (e.isTrusted && e.target.closest?.('button')) { note(null, ''); } }, true);
  document.addEventListener('blur', (e) => commit(e.target), true);
}
