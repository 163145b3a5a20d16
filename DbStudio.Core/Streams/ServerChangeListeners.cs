// One change listener per PostgreSQL server (issue 17): a project's capture trigger notifies on its own server, so each
// server other than the platform's (whose LISTEN connection is PlatformListener's, which also carries the platform's
// signals) gets a LISTEN connection of its own on the platform role, which wakes the stream's dispatcher.
using DbStudio.Core.Platform;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace DbStudio.Core.Streams;

public sealed class ServerChangeListeners : IHostedService, IDisposable
{
    private readonly PlatformListener[] _listeners;

    public ServerChangeListeners(ProjectServers servers, ChangeHub hub, ILogger<PlatformListener> log)
    {
        _listeners = [.. servers.All.Where(s => !s.IsPlatform).Select(s =>
        {
            var listener = new PlatformListener(s.DataSource, log);
            listener.Route(ChangeLog.Channel, _ => hub.Wake());
            return listener;
        })];
    }

    /// <summary>Whether every other server's LISTEN connection is up (health checks).</summary>
    public bool Listening => _listeners.All(l => l.Listening);

    public async Task StartAsync(CancellationToken ct)
    {
        foreach (var l in _listeners) await l.StartAsync(ct);
    }

    public async Task StopAsync(CancellationToken ct)
    {
        foreach (var l in _listeners) await l.StopAsync(ct);
    }

    public void Dispose()
    {
        foreach (var l in _listeners) l.Dispose();
    }
}
