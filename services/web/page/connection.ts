import { byId } from './dom.ts';

// One banner for every way the page can lose the server: the browser is offline, a request
// failed to reach the API, or a job's event stream dropped. It clears when each of them recovers.

type Channel = 'browser' | 'requests' | 'stream';

export class ConnectionBanner {
  private readonly banner = byId('connection');
  private readonly lost = new Set<Channel>();

  constructor() {
    window.addEventListener('offline', () => this.set('browser', false));
    window.addEventListener('online', () => this.set('browser', true));
    if (!navigator.onLine) this.set('browser', false);
  }

  set(channel: Channel, ok: boolean): void {
    if (ok) this.lost.delete(channel);
    else this.lost.add(channel);
    this.banner.hidden = this.lost.size === 0;
    this.banner.textContent = this.lost.has('browser')
      ? 'You are offline. The job goes on on the server; progress resumes when the network is back.'
      : 'Connection to the server lost. Reconnecting… (the job goes on on the server)';
  }
}
