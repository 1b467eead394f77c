// The status bar item's states. Pure, unit-tested.

export type State = 'starting' | 'ready' | 'working' | 'unreachable' | 'disabled' | 'stopped';

export interface Look {
  text: string;
  tooltip: string;
  /** A ThemeColor id for the background, when the state needs attention. */
  background?: string;
}

export function look(state: State, detail = ''): Look {
  const more = detail ? `\n${detail}` : '';
  switch (state) {
    case 'starting':
      return { text: '$(loading~spin) Ghostline', tooltip: `Ghostline: starting ghostline-lsp${more}` };
    case 'ready':
      return { text: '$(sparkle) Ghostline', tooltip: `Ghostline: ready (click to turn suggestions off)${more}` };
    case 'working':
      return { text: '$(sync~spin) Ghostline', tooltip: `Ghostline: asking the backend${more}` };
    case 'unreachable':
      return {
        text: '$(warning) Ghostline',
        tooltip: `Ghostline: backend unreachable; suggestions resume by themselves when it answers${more}`,
        background: 'statusBarItem.warningBackground',
      };
    case 'disabled':
      return { text: '$(circle-slash) Ghostline', tooltip: `Ghostline: suggestions off (click to turn on)${more}` };
    case 'stopped':
      return {
        text: '$(error) Ghostline',
        tooltip: `Ghostline: ghostline-lsp is not running${more}`,
        background: 'statusBarItem.errorBackground',
      };
  }
}

/**
 * Folds events into the state: requests in flight make it `working`, a warning from the
 * server about the backend makes it `unreachable` until an answer comes back.
 */
export class StatusModel {
  private inFlight = 0;
  private backendDown = false;
  private running = false;
  private enabled = true;
  detail = '';

  constructor(private readonly onChange: (state: State) => void = () => {}) {}

  get state(): State {
    if (!this.enabled) {
      return 'disabled';
    }
    if (!this.running) {
      return this.detail ? 'stopped' : 'starting';
    }
    if (this.inFlight > 0) {
      return 'working';
    }
    return this.backendDown ? 'unreachable' : 'ready';
  }

  private emit() {
    this.onChange(this.state);
  }

  setEnabled(enabled: boolean) {
    this.enabled = enabled;
    this.emit();
  }

  setRunning(running: boolean, detail = '') {
    this.running = running;
    this.detail = detail;
    if (!running) {
      this.inFlight = 0;
    }
    this.emit();
  }

  requestStarted() {
    this.inFlight += 1;
    this.emit();
  }

  /** `answered`: the server gave at least one suggestion (so the backend answered). */
  requestEnded(answered: boolean) {
    this.inFlight = Math.max(0, this.inFlight - 1);
    if (answered) {
      this.backendDown = false;
    }
    this.emit();
  }

  /** A server message: ghostline-lsp warns once when the backend fails, notes when it is back. */
  serverMessage(type: number, message: string) {
    if (!message.startsWith('ghostline:')) {
      return;
    }
    if (type <= 2 && !/answers again/.test(message)) {
      this.backendDown = true;
    } else if (/answers again/.test(message)) {
      this.backendDown = false;
    }
    this.emit();
  }
}
