// The Dockerfile, linted (no Docker engine on these machines; .ci/publish-check builds and starts the same publish
// output): multi-stage, a non-root runtime user, a health check, no secrets baked in, and every COPY source and the
// published project exist in the repository.
using System.Text.RegularExpressions;

namespace DbStudio.Tests.Unit;

public class DockerfileTests
{
    private static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "DbStudio.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("repository root not found");
    }

    [Fact]
    public void The_Dockerfile_is_multi_stage_non_root_with_a_health_check_and_no_secrets()
    {
        var root = RepoRoot();
        // Instructions, with continuation lines joined and comments dropped.
        var text = Regex.Replace(File.ReadAllText(Path.Combine(root, "Dockerfile")), @"\\\r?\n", " ");
        var lines = text.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
        var froms = lines.Where(l => l.StartsWith("FROM ", StringComparison.Ordinal)).ToList();
        Assert.True(froms.Count >= 2, "multi-stage: a build stage and a runtime stage");
        Assert.Matches(@"^FROM \S+ AS \w+", froms[0]);
        Assert.Contains("aspnet", froms[^1]); // the runtime image, not the SDK
        var final = lines.Skip(lines.IndexOf(froms[^1])).ToList();
        var user = final.LastOrDefault(l => l.StartsWith("USER ", StringComparison.Ordinal));
        Assert.NotNull(user);
        Assert.DoesNotMatch(@"^USER (root|0)(:|$)", user);
        Assert.Contains(final, l => l.StartsWith("HEALTHCHECK ", StringComparison.Ordinal) && l.Contains("--healthcheck"));
        Assert.Contains(final, l => l.StartsWith("ENTRYPOINT ", StringComparison.Ordinal));
        // No credentials baked into the image.
        Assert.DoesNotContain(lines, l => Regex.IsMatch(l, @"^(ENV|ARG)\b.*(PASSWORD|SECRET|KEY|TOKEN|ConnectionStrings)", RegexOptions.IgnoreCase));
        // Every COPY from the build context exists; the published project is the web app.
        foreach (var copy in lines.Where(l => l.StartsWith("COPY ", StringComparison.Ordinal) && !l.Contains("--from=")))
            foreach (var source in copy.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1..^1])
                Assert.True(File.Exists(Path.Combine(root, source)) || Directory.Exists(Path.Combine(root, source)), $"COPY source {source} is missing");
        var publish = Assert.Single(lines, l => l.Contains("dotnet publish"));
        Assert.Contains("DbStudio.Web/DbStudio.Web.csproj", publish);
        Assert.Contains("-c Release", publish);
    }
}
