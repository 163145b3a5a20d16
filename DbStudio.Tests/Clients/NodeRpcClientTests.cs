// postgrest-js's .rpc(), unchanged (the exact published version in DbStudio.Tests/js), against the running app.
using DbStudio.Tests.Infrastructure;

namespace DbStudio.Tests.Clients;

public class NodeRpcClientTests(TestApp app)
{
    [Fact]
    public async Task Postgrest_js_rpc_works_unchanged()
    {
        var platform = await app.NewUserClientAsync();
        var (exit, output) = await NodeScript.RunAsync("rpc.test.mjs", new()
        {
            ["BASE_URL"] = app.BaseUrl.ToString(),
            ["PLATFORM_TOKEN"] = platform.DefaultRequestHeaders.Authorization!.Parameter!,
        });
        Assert.True(exit == 0, output);
        Assert.Matches(@"# pass [1-9]\d*", output);
        Assert.Contains("# fail 0", output);
    }
}
