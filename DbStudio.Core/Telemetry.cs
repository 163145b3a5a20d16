// The app's own traces and metrics (System.Diagnostics), exported through OpenTelemetry when configured: one span per
// REST request, console run and stream subscription, with the project and table but never a value, key or SQL text.
using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace DbStudio.Core;

public static class Telemetry
{
    public const string Name = "DbStudio";
    public static readonly ActivitySource Source = new(Name);
    private static readonly Meter Meter = new(Name);

    public static readonly Histogram<double> RestDuration =
        Meter.CreateHistogram<double>("dbstudio.rest.duration", "ms", "REST requests: parse, plan and run (one round trip)");
    public static readonly Histogram<double> ConsoleDuration =
        Meter.CreateHistogram<double>("dbstudio.console.duration", "ms", "SQL console and assistant runs");
    public static readonly UpDownCounter<long> StreamSubscribers =
        Meter.CreateUpDownCounter<long>("dbstudio.stream.subscribers", "{subscriber}", "Open live-stream subscriptions");
}
