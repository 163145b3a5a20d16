// Traces and metrics (issue 6 §6): a REST request, a console run and a stream subscription each leave a span with the
// project (and table) on it, the REST duration histogram records, and no span carries a key, token or the SQL text.
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net.Http.Headers;
using DbStudio.Core;
using DbStudio.Tests.Infrastructure;

namespace DbStudio.Tests.Endpoints;

public class TelemetryTests(TestApp app)
{
    [Fact]
    public async Task Rest_console_and_stream_work_leaves_spans_and_metrics_without_secrets()
    {
        var spans = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name is Telemetry.Name or "Microsoft.AspNetCore",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
        var restDurations = new ConcurrentQueue<double>();
        using var meters = new MeterListener();
        meters.InstrumentPublished = (i, l) => { if (i.Meter.Name == Telemetry.Name) l.EnableMeasurementEvents(i); };
        meters.SetMeasurementEventCallback<double>((i, v, _, _) => { if (i.Name == "dbstudio.rest.duration") restDurations.Enqueue(v); });
        meters.Start();

        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "telemetry");
        await TestApp.SqlAsync(owner, p.Id, "create table notes (id serial primary key, body text); select 'secret-looking literal 4b1d'");
        var http = new HttpClient { BaseAddress = app.BaseUrl };
        var req = new HttpRequestMessage(HttpMethod.Get, $"/db/{p.Id}/rest/notes?apikey={p.AnonKey}&select=id");
        (await http.SendAsync(req)).Dispose();
        await using (var s = await SseClient.OpenAsync(app.BaseUrl, $"/db/{p.Id}/rest/notes/stream", p.ApiKey))
        {
            var insert = new HttpRequestMessage(HttpMethod.Post, $"/db/{p.Id}/rest/notes") { Content = new StringContent("{\"body\":\"x\"}", System.Text.Encoding.UTF8, "application/json") };
            insert.Headers.Authorization = new AuthenticationHeaderValue("Bearer", p.ApiKey);
            (await http.SendAsync(insert)).EnsureSuccessStatusCode();
            await s.NextAsync();
        }
        // Spans end (and metrics record) as the server finishes each request, which may be after the client has its
        // answer: wait for them rather than for a fixed time, which a slow machine overruns.
        List<Activity> Ours() => spans.Where(a => a.Source.Name == Telemetry.Name && Equals(a.GetTagItem("dbstudio.project"), p.Id)).ToList();
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(60)
               && !(Ours() is var o && o.Any(a => a.OperationName == "rest GET") && o.Any(a => a.OperationName == "rest POST")
                    && o.Any(a => a.OperationName == "sql console")
                    && spans.Any(a => a.Source.Name == "Microsoft.AspNetCore" && a.GetTagItem("dbstudio.stream.start_after") is not null)
                    && !restDurations.IsEmpty))
            await Task.Delay(50);

        var ours = Ours();
        // (anon may not read the table under the secure defaults: the span records the 401)
        Assert.Contains(ours, a => a.OperationName == "rest GET" && Equals(a.GetTagItem("dbstudio.table"), "notes")
                                   && Equals(a.GetTagItem("dbstudio.caller"), "Anon") && Equals(a.GetTagItem("http.response.status_code"), 401));
        Assert.Contains(ours, a => a.OperationName == "rest POST" && Equals(a.GetTagItem("http.response.status_code"), 201));
        Assert.Contains(ours, a => a.OperationName == "sql console" && Equals(a.GetTagItem("dbstudio.sql.statements"), 2));
        Assert.Contains(spans, a => a.Source.Name == "Microsoft.AspNetCore" && a.GetTagItem("dbstudio.stream.start_after") is not null);
        Assert.NotEmpty(restDurations);

        // Nothing secret in any span's name or tags (the request spans redact query strings).
        string[] secrets = [p.AnonKey, p.ApiKey, "secret-looking literal 4b1d", new Uri(p.ConnectionUrl).UserInfo.Split(':')[1]];
        var leaks = spans.SelectMany(a => a.TagObjects.Select(t => $"{a.OperationName} {t.Key}={t.Value}").Append(a.DisplayName))
            .Where(text => secrets.Any(s => text.Contains(s, StringComparison.Ordinal))).ToList();
        Assert.True(leaks.Count == 0, string.Join("\n", leaks.Take(5)));
    }

    [Fact]
    public async Task With_an_OTLP_endpoint_configured_the_app_starts_and_serves()
    {
        // No collector listens there: exporting fails quietly in the background, requests are unaffected.
        await using var exporting = new AppFactory(app.Db.PlatformConnectionString,
            new Dictionary<string, string?> { ["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:9" });
        var http = exporting.CreateClient();
        Assert.Equal(System.Net.HttpStatusCode.OK, (await http.GetAsync("/healthz")).StatusCode);
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "otlp");
        var req = new HttpRequestMessage(HttpMethod.Get, $"/db/{p.Id}/rest/");
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", p.ApiKey);
        Assert.Equal(System.Net.HttpStatusCode.OK, (await http.SendAsync(req)).StatusCode);
    }
}
